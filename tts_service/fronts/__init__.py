"""The fronts: each speaks one protocol (gRPC, HTTP and its WebSocket, Wyoming) to the calls."""
