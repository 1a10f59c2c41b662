#!/bin/sh
# Checks an nginx configuration snippet (deploy/nginx/tts-grpc.conf, or the file given) with
# `nginx -t`, inside a throwaway main configuration and prefix, so no system file is touched.
set -eu

conf=$(realpath "${1:-$(dirname "$0")/tts-grpc.conf}")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cat > "$scratch/nginx.conf" <<CONF
pid $scratch/nginx.pid;
events {}
http {
    client_body_temp_path $scratch/body;
    proxy_temp_path $scratch/proxy;
    fastcgi_temp_path $scratch/fastcgi;
    uwsgi_temp_path $scratch/uwsgi;
    scgi_temp_path $scratch/scgi;
    access_log $scratch/access.log;
    include $conf;
}
CONF
nginx -t -q -p "$scratch" -e "$scratch/error.log" -c "$scratch/nginx.conf"
