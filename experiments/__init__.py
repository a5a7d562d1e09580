"""The paper's experiments. ``randconv reproduce`` finds them through the
``randconv.experiments`` entry points (pyproject.toml), so importing this
package loads nothing: a module is imported when it is used."""
