"""The compose wizard: one module per page, put together by `compose_wizard.ComposeWizard`."""
