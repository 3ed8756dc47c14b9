#!/usr/bin/env bash
# What the browser tests of `medsr serve` need besides Python packages: Debian's chromium (playwright
# drives it; `playwright install` would download from outside) and Mesa's EGL for VTK's off-screen
# rendering. Installed through apt when run as root (CI is); otherwise it says what is missing and
# the browser tests are reported as SKIPPED with that reason. Never fails the build.
set -u
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa' || need+=(libegl1 libegl-mesa0 libgl1-mesa-dri)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install_browser: apt-get install ${need[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
        || echo "install_browser: could not install ${need[*]}; the browser tests will be skipped"
else
    echo "install_browser: missing ${need[*]} (not root, or no apt-get); the browser tests will be skipped." \
         "Install them with: sudo apt-get install -y ${need[*]}"
fi
exit 0
