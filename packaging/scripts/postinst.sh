#!/bin/sh
# Reload units and start the agent if it is enrolled; enrollment itself
# needs a one-time token the administrator types.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	systemctl enable patchward-agent.service >/dev/null 2>&1 || true
	if [ -f /var/lib/patchward-agent/identity.json ]; then
		systemctl restart patchward-agent.service || true
	else
		echo "patchward-agent: enroll with: patchward-agent enroll --server URL --token TOKEN && systemctl start patchward-agent"
	fi
fi
exit 0
