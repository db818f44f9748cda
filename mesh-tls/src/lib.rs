//! This crate will hold mutual TLS: workload identities (SPIFFE IDs) in X.509 certificates, rustls server and client configurations built with aws-lc-rs, an acceptor and a connector that plug into mesh-core's server and client, certificate rotation from files or a push API, and a small CA for trust anchors, issuers and workload certificates.
//!
//! It is a placeholder in the workspace today: it exports nothing yet, so that
//! no API appears finished before it is.
