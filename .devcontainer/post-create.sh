#!/usr/bin/env bash
# Runs once when the dev container is created (devcontainer.json postCreateCommand): everything
# `make run` and `make test` need, so both work at the first prompt. Python 3.11 comes from the
# image, Node.js (for Azurite) and the Azure CLIs from the features.
set -euo pipefail
cd "$(dirname "$0")/.."
# Chromium for the dashboard's browser tests (Debian's package; sudo inside).
.ci/install-browser
# What `make test` bootstraps: .venv with the developer and benchmark extras, .venv-infra for
# checkov, and the pinned Azurite under .devhost/azurite (npm, from the Node.js feature).
make venv .venv/.installed-bench infra-venv azurite
