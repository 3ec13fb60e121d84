"""Generated passwords: one RandomPassword per account, renewed by the rotation stamp."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_random as random

if TYPE_CHECKING:
    from components.settings import Settings

# Characters that need no quoting anywhere a password travels here: in any position of a shell
# word (no leading `~` expansion), in a URL (RFC 3986 unreserved), in a JSON string, in an
# option or nginx file, and through OpenEMR's first-setup installer, which splits on `=`.
SAFE_SPECIALS = "-_."


class Credentials(pulumi.ComponentResource):
    """The password of every account in the stack. Accounts are created on first request."""

    def __init__(
        self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("hospital:components:Credentials", name, None, opts)
        self._name = name
        self._length = settings.credentials.length
        self._rotation = settings.credentials.rotation.isoformat()
        self._passwords: dict[str, random.RandomPassword] = {}

    def password(self, account: str) -> pulumi.Output[str]:
        """The secret password of `account` (e.g. `database-root`)."""
        if account not in self._passwords:
            self._passwords[account] = random.RandomPassword(
                f"{self._name}-{account}",
                random.RandomPasswordArgs(
                    length=self._length,
                    upper=True,
                    lower=True,
                    numeric=True,
                    special=True,
                    min_upper=1,
                    min_lower=1,
                    min_numeric=1,
                    min_special=1,
                    override_special=SAFE_SPECIALS,
                    keepers={"rotation": self._rotation, "account": account},
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        return pulumi.Output.secret(self._passwords[account].result)

    @property
    def accounts(self) -> list[str]:
        """Every account name, sorted: the credential inventory an auditor sees."""
        return sorted(self._passwords)

    @property
    def rotation(self) -> str:
        return self._rotation

    def secrets(self) -> pulumi.Output:
        """Every password by account, as one secret output."""
        return pulumi.Output.secret(
            {account: password.result for account, password in sorted(self._passwords.items())}
        )
