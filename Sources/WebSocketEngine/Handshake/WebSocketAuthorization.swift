import FoundationEssentials

/// Credentials sent in the opening handshake's Authorization header.
///
/// Set them with ``WebSocketClientConfiguration/authorization``; an `Authorization` header in
/// ``WebSocketClientConfiguration/headers`` takes precedence. Without either, the user name and password of a
/// `ws://user:password@host/` URL are sent as ``basic(username:password:)``.
public enum WebSocketAuthorization: Sendable, Hashable {
    /// HTTP Basic authentication (RFC 7617): the user name and password, base64-encoded as "user:password".
    case basic(username: String, password: String)
    /// A bearer token (RFC 6750), sent as it is.
    case bearer(String)

    /// The Authorization header value ("Basic base64(user:pass)" / "Bearer token").
    public var headerValue: String {
        switch self {
        case .basic(let username, let password):
            return "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        case .bearer(let token):
            return "Bearer " + token
        }
    }
}
