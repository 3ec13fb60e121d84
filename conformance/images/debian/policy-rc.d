#!/bin/sh
# Package scripts must not start daemons while an image is being built.
exit 101
