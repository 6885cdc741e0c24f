"""Render ops/prometheus/alertmanager.yml the way the Ansible monitoring role does (Jinja).

The committed file is a template (the webhook URL is a deployment secret), so amtool can only
check a rendered copy. Strict undefined: a misspelt variable fails here, not on the host.

    python ops/prometheus/render_alertmanager.py [--webhook-url URL] > alertmanager.yml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jinja2

TEMPLATE = Path(__file__).with_name("alertmanager.yml")


def render(webhook_url: str | None = None, template: Path = TEMPLATE) -> str:
    """The configuration Alertmanager would load, with or without a webhook configured."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    variables = {} if webhook_url is None else {"monitoring_alert_webhook_url": webhook_url}
    return env.from_string(template.read_text()).render(**variables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhook-url", help="monitoring_alert_webhook_url (omit: no webhook)")
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.webhook_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
