"""Public object ids in OpenAI's shapes."""

import secrets


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def new_file_id() -> str:
    return new_id("file-")


def new_batch_id() -> str:
    return new_id("batch_")
