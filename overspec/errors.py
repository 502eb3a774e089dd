"""The one exception type for mistakes a user can fix (config, paths, data, checkpoints)."""


class UserError(Exception):
    """A problem the user caused and can fix; the message is one sentence naming the thing and the fix.

    Workflow scripts and the CLI print only the message, never a traceback.
    """
