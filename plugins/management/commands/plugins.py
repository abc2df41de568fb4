"""``manage.py plugins [list|enable ID|disable ID|rescan]``: plugins from the command line."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from batchserver.errors import DomainError
from plugins import services


class Command(BaseCommand):
    help = "List plugins (with why one cannot load), enable or disable one, or find them again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["list", "enable", "disable", "rescan"])
        parser.add_argument("plugin_id", nargs="?")

    def handle(self, *args, action: str, plugin_id: str | None, **options) -> None:
        try:
            if action == "list":
                for plugin in services.list_plugins():
                    reason = plugin["reason"] or plugin["disabled_reason"]
                    self.stdout.write(
                        f"{plugin['id']:<24} {plugin['version']:<10} {plugin['status']:<14} "
                        f"{','.join(plugin['hook_types']):<28} {reason}".rstrip()
                    )
            elif action == "rescan":
                services.rescan()
                self.stdout.write("every process will look for plugins again")
            else:
                if not plugin_id:
                    raise CommandError(f"{action} needs a plugin id")
                changed = getattr(services, action)(plugin_id)
                self.stdout.write(f"{plugin_id}: {changed['status']}")
        except DomainError as exc:
            raise CommandError(exc.message) from None
