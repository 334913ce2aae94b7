# X test tools for the capture tests (tests/integration/test_capture_x11.py) and the
# footprint benchmark. Included from the root Makefile with `-include collectors/x11.mk`.
.PHONY: x11-tools

# Debian/Ubuntu only; installs nothing when both tools are already on PATH.
x11-tools:
	@if command -v Xvfb >/dev/null && command -v xdotool >/dev/null; then :; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends xvfb xdotool; \
	fi
