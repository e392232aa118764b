#!/usr/bin/env bash
# Bad command lines and bad files fed to the example programs (built by .ci/test in build/):
# each must end with its documented exit code (2 usage, 1 data/config error) and a message.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/robust/cli_bad_inputs.sh build
