#!/usr/bin/env bash
# Install a CPU Vulkan driver (Mesa lavapipe) so SAPIEN/ManiSkill can render without a GPU.
# Debian 12's own Mesa (22.3) lavapipe is too old for SAPIEN; bookworm-backports has Mesa >= 24.3.
# Idempotent and non-interactive; run as root (CI) or with sudo available.
set -euo pipefail

MIN_MESA="24.3"

icd_file() { ls /usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -n1; }

installed_mesa() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }

if [ -n "$(icd_file)" ] && dpkg --compare-versions "$(installed_mesa)" ge "$MIN_MESA"; then
  echo "lavapipe already installed (mesa-vulkan-drivers $(installed_mesa)): $(icd_file)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

if ! grep -q '^ID=debian' /etc/os-release || ! grep -q 'VERSION_CODENAME=bookworm' /etc/os-release; then
  echo "warning: not Debian 12 (bookworm); installing mesa-vulkan-drivers from the default repositories" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
else
  echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
fi

if [ -z "$(icd_file)" ]; then
  echo "error: mesa-vulkan-drivers installed but no lavapipe ICD file under /usr/share/vulkan/icd.d/" >&2
  exit 1
fi
echo "installed mesa-vulkan-drivers $(installed_mesa); lavapipe ICD: $(icd_file)"
echo "SAPIEN uses it automatically via embodireward, or: export VK_ICD_FILENAMES=$(icd_file)"
