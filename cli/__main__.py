"""``python -m cli``: the same application as the ``tabellion`` console script (the demo
starts its nodes this way, so it works from a checkout without the script on PATH)."""

from cli.main import app

app(prog_name="tabellion")
