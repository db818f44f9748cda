//! A Server with a rate limit policy, for the rate limit tests.

/// A Server on 8080 of the `web` workload, open to every client.
pub const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  accessPolicy: all-unauthenticated
";

/// `SERVER` and a rate limit policy named `web-limit` on it, with `spec`.
pub fn limited(spec: &str) -> String {
    format!(
        "{SERVER}---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{name: web-limit}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
{spec}"
    )
}
