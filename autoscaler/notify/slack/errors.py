"""What Slack's answers mean for forescale: which errors are transient, which are configuration or payload errors
(reported once), and the one-line fix for each."""

from __future__ import annotations

from urllib.parse import urlsplit

from autoscaler.core.settings.slack import SlackTarget

TRANSIENT = ("rate_limited", "server_error", "timeout", "connection_error", "tls_error")
CONFIG_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "user_not_found",
    }
)
PAYLOAD_ERRORS = frozenset(
    {"invalid_payload", "invalid_blocks", "invalid_blocks_format", "no_text", "msg_too_long", "too_many_attachments"}
)


def fix_for(error: str | None, target: SlackTarget, base_url: str | None = None) -> str:
    """What the user should do about a Slack error (one line); ``base_url``: slack.base_url, if configured."""
    src, channel = target.source, target.channel or "the channel"
    where = target.secret if target.mode == "webhook" else (base_url or "https://slack.com/api/")
    parts = urlsplit(where)
    host = (parts.hostname or "slack.com") + (f":{parts.port}" if parts.port else "")
    reinstall = f"reinstall the Slack app to the workspace and update {src}"
    fixes = {
        "invalid_auth": f"check {src}: Slack does not accept this token (use the app's Bot User OAuth Token, xoxb-…)",
        "not_authed": f"check {src}: no token was sent",
        "account_inactive": f"the app or its user was deactivated: {reinstall}",
        "token_revoked": f"the token was revoked: {reinstall}",
        "token_expired": f"the token expired: {reinstall}",
        "no_permission": "give the Slack app the chat:write scope and reinstall it",
        "missing_scope": "give the Slack app the chat:write scope and reinstall it",
        "channel_not_found": f"invite the bot to the channel (/invite @your-bot in {channel}) or fix slack.channel",
        "not_in_channel": f"invite the bot to {channel} (/invite @your-bot) or fix slack.channel",
        "is_archived": f"{channel} is archived: unarchive it or change slack.channel",
        "restricted_action": f"a workspace admin restricts posting in {channel}: allow the app or change slack.channel",
        "invalid_token": f"the incoming webhook is invalid or was revoked: create a new one and update {src}",
        "no_service": f"the incoming webhook is disabled or was removed: create a new one and update {src}",
        "no_service_id": f"the webhook URL is incomplete: copy it again into {src}",
        "no_team": f"the webhook's workspace no longer exists: create a new webhook and update {src}",
        "team_disabled": f"the webhook's workspace is disabled: create a new webhook and update {src}",
        "channel_is_archived": f"the webhook's channel is archived: unarchive it or create a new webhook, update {src}",
        "action_prohibited": "a workspace admin restricted posting to the webhook's channel",
        "posting_to_general_channel_denied": "only admins may post to #general: use another channel",
        "user_not_found": f"the webhook's user no longer exists: create a new webhook and update {src}",
        "rate_limited": "Slack rate-limited the app for longer than slack.max_retry_time; later messages still go out",
        "server_error": "Slack had a server error (see https://slack-status.com); later messages still go out",
        "timeout": f"no answer from {host} within slack.timeout: check the network path (proxy, firewall)",
        "connection_error": f"cannot connect to {host}: check DNS, HTTPS_PROXY and firewall rules",
        "tls_error": f"the TLS certificate of {host} is not trusted: check slack.base_url, or add its CA to the "
        "system trust store (SSL_CERT_FILE)",
    }
    if error in PAYLOAD_ERRORS:
        return "Slack rejected the message forescale built: please report this bug with the log line"
    return fixes.get(error or "", "see https://api.slack.com/methods/chat.postMessage#errors")
