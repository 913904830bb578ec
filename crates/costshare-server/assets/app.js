// the dashboard (see crates/costshare-server/assets)
