"""Backends chosen by configuration (a mapping, e.g. the app's DELIVERY setting); secrets only from
the environment, never from the configuration file. See docs/documents.md for the keys."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from engine.errors import CreditctlError

from .base import DeliveryResult, Notifier
from .log import LogNotifier
from .message import Message
from .smtp import SmtpNotifier
from .webhook import SmsNotifier, WebhookNotifier

CHANNELS = ("email", "sms", "letter", "lawyer")
BACKENDS = ("log", "smtp", "webhook", "sms")


class DeliveryConfigError(CreditctlError):
    code = "E_DELIVERY_CONFIG"


class ChannelRouter:
    """Sends each message with its channel's notifier."""

    name = "router"

    def __init__(self, routes: Mapping[str, Notifier], default: Notifier):
        self.routes, self.default = dict(routes), default

    def notifier_for(self, channel: str) -> Notifier:
        return self.routes.get(channel, self.default)

    def deliver(self, message: Message) -> DeliveryResult:
        return self.notifier_for(message.channel).deliver(message)


def _env(environ: Mapping[str, str], name: str, what: str) -> str:
    value = environ.get(name)
    if not value:
        raise DeliveryConfigError(f"{what}: environment variable {name} is not set")
    return value


def _positive(section: str, cfg: Mapping, key: str, default):
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise DeliveryConfigError(f"delivery.{section}.{key} must be a positive number")
    return value


def _build(kind: str, config: Mapping, environ: Mapping[str, str]) -> Notifier:
    try:
        if kind == "log":
            return LogNotifier()
        if kind == "smtp":
            cfg = config.get("smtp") or {}
            if not cfg.get("host") or not cfg.get("sender"):
                raise DeliveryConfigError("delivery.smtp needs host and sender")
            user_env = cfg.get("user_env", "CREDITCTL_SMTP_USER")
            user = environ.get(user_env) or None
            password = _env(environ, cfg.get("password_env", "CREDITCTL_SMTP_PASSWORD"), "SMTP login") if user else None
            # ca_file: a private relay's CA; without it the system's trusted CAs
            context = ssl.create_default_context(cafile=cfg["ca_file"]) if cfg.get("ca_file") else None
            return SmtpNotifier(
                cfg["host"],
                int(_positive("smtp", cfg, "port", 25)),
                sender=cfg["sender"],
                starttls=bool(cfg.get("starttls", False)),
                username=user,
                password=password,
                timeout=_positive("smtp", cfg, "timeout", 30),
                ssl_context=context,
            )
        if kind in ("webhook", "sms"):
            cfg = config.get(kind) or {}
            if not cfg.get("url"):
                raise DeliveryConfigError(f"delivery.{kind} needs url")
            default_env = "CREDITCTL_WEBHOOK_SECRET" if kind == "webhook" else "CREDITCTL_SMS_SECRET"
            secret = _env(environ, cfg.get("secret_env", default_env), f"{kind} signing secret")
            cls = WebhookNotifier if kind == "webhook" else SmsNotifier
            return cls(cfg["url"], secret, timeout=_positive(kind, cfg, "timeout", 10))
    except (ValueError, OSError) as exc:  # the backends' own argument checks, an unreadable ca_file
        raise DeliveryConfigError(f"delivery.{kind}: {exc}") from None
    raise DeliveryConfigError(f"unknown delivery backend '{kind}' (one of {', '.join(BACKENDS)})")


def notifier_from_config(config: Mapping | None, environ: Mapping[str, str] | None = None) -> ChannelRouter:
    """`backend` (default log) serves every channel but sms; `channels` overrides per channel; sms
    defaults to log, since an e-mail relay is no SMS gateway. Fails at start, not at the first send,
    when a backend lacks its settings or secret."""
    config = config or {}
    environ = os.environ if environ is None else environ
    default_kind = config.get("backend", "log")
    kinds = {channel: default_kind for channel in CHANNELS if channel != "sms"} | {"sms": "log"}
    for channel, kind in (config.get("channels") or {}).items():
        if channel not in CHANNELS:
            raise DeliveryConfigError(
                f"unknown channel '{channel}' in delivery.channels (one of {', '.join(CHANNELS)})"
            )
        kinds[channel] = kind
    built: dict[str, Notifier] = {}
    for kind in {*kinds.values(), default_kind}:
        built[kind] = _build(kind, config, environ)
    return ChannelRouter({channel: built[kind] for channel, kind in kinds.items()}, default=built[default_kind])
