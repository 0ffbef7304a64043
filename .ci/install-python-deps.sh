#!/bin/sh
# Python packages used by the test suites (cross-checks against independent
# implementations). Run once per CI machine / dev box.
set -eu
python3 -m pip install --quiet fastavro==1.12.1
