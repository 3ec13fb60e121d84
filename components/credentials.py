"""Generated passwords: one RandomPassword per account, renewed by the rotation stamp."""

from __future__ import annotations

import pulumi
import pulumi_random as random

from components.settings import Settings

# Characters that need no quoting in a shell word, a URL userinfo or query, a JSON string,
# an nginx or MariaDB option file, and an OpenEMR or Orthanc configuration value.
SAFE_SPECIALS = "-_.~+="


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
