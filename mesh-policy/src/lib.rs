//! This crate will hold authorization that reads Linkerd's policy resources (Server, ServerAuthorization, AuthorizationPolicy, MeshTLSAuthentication, NetworkAuthentication, HTTPRoute), compiles them into an index once per change, and enforces them per request (403, 404, gRPC PERMISSION_DENIED) and per connection.
//!
//! It is a placeholder in the workspace today: it exports nothing yet, so that
//! no API appears finished before it is.
