"""The members' web portal: pages, passkeys and its own HTTP server beside the gRPC port."""
