use std::fmt;

/// Why a string is not a valid [`Identity`](super::Identity) or
/// [`TrustDomain`](super::TrustDomain).
///
/// Each variant is one rule of the SPIFFE ID specification or of DNS names,
/// so config errors can say exactly what to fix, and tests can assert which
/// rule fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidIdentity {
    /// The string is empty.
    Empty,
    /// The SPIFFE ID is longer than 2048 bytes.
    TooLong,
    /// The string has a URI scheme other than `spiffe://` (`http://`,
    /// `SPIFFE://`, `spiffe:` without `//`).
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    MissingTrustDomain,
    /// The trust domain is longer than 255 bytes.
    TrustDomainTooLong,
    /// The trust domain holds a character other than lowercase `a-z`, digits,
    /// `.`, `-` and `_`. Uppercase letters land here too.
    BadTrustDomainChar(char),
    /// The authority has a userinfo part (`user@`).
    UserinfoPresent,
    /// The authority has a port, or a `:` at all.
    PortPresent,
    /// The ID has a query (`?`) or a fragment (`#`).
    QueryOrFragment,
    /// The ID holds a `%`: SPIFFE IDs are never percent-encoded.
    PercentEncoded,
    /// The path has an empty segment (`//`).
    EmptySegment,
    /// The path has a `.` or `..` segment.
    DotSegment,
    /// A path segment holds a character other than `A-Z`, `a-z`, digits, `.`,
    /// `-` and `_`.
    BadPathChar(char),
    /// The path ends with `/`.
    TrailingSlash,
    /// A trust domain was given as a SPIFFE ID with a path, which names a
    /// workload rather than the trust domain.
    UnexpectedPath,
    /// The DNS-style name is longer than 253 bytes.
    DnsNameTooLong,
    /// The DNS-style name has an empty label (`a..b`, a leading or a trailing
    /// dot).
    EmptyDnsLabel,
    /// A DNS label is longer than 63 bytes.
    DnsLabelTooLong,
    /// A DNS label holds a character other than letters, digits and `-`.
    BadDnsChar(char),
    /// A DNS label starts or ends with `-`.
    DnsLabelHyphen,
    /// The DNS-style name has a single label (`web`): a mesh identity always
    /// has a domain.
    SingleLabel,
    /// The last DNS label is all digits, so the name reads as an IP address.
    NumericTopLabel,
}

impl fmt::Display for InvalidIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("identity is empty"),
            Self::TooLong => f.write_str("spiffe id is longer than 2048 bytes"),
            Self::WrongScheme => f.write_str("scheme must be `spiffe://`"),
            Self::MissingTrustDomain => f.write_str("trust domain is missing"),
            Self::TrustDomainTooLong => f.write_str("trust domain is longer than 255 bytes"),
            Self::BadTrustDomainChar(c) => write!(
                f,
                "trust domain holds {c:?}; only lowercase letters, digits, '.', '-' and '_' are allowed"
            ),
            Self::UserinfoPresent => f.write_str("spiffe id must not have a userinfo part"),
            Self::PortPresent => f.write_str("spiffe id must not have a port"),
            Self::QueryOrFragment => f.write_str("spiffe id must not have a query or fragment"),
            Self::PercentEncoded => f.write_str("spiffe id must not be percent-encoded"),
            Self::EmptySegment => f.write_str("path has an empty segment"),
            Self::DotSegment => f.write_str("path has a '.' or '..' segment"),
            Self::BadPathChar(c) => write!(
                f,
                "path holds {c:?}; only letters, digits, '.', '-' and '_' are allowed"
            ),
            Self::TrailingSlash => f.write_str("path ends with '/'"),
            Self::UnexpectedPath => f.write_str("trust domain must not have a path"),
            Self::DnsNameTooLong => f.write_str("dns name is longer than 253 bytes"),
            Self::EmptyDnsLabel => f.write_str("dns name has an empty label"),
            Self::DnsLabelTooLong => f.write_str("dns label is longer than 63 bytes"),
            Self::BadDnsChar(c) => write!(
                f,
                "dns name holds {c:?}; only letters, digits and '-' are allowed"
            ),
            Self::DnsLabelHyphen => f.write_str("dns label starts or ends with '-'"),
            Self::SingleLabel => f.write_str("dns name has a single label"),
            Self::NumericTopLabel => f.write_str("dns name ends with an all-digit label"),
        }
    }
}

impl std::error::Error for InvalidIdentity {}
