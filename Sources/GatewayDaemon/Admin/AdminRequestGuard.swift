import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers

/// Keeps browser pages the management API did not serve from driving it (cross-site requests, DNS rebinding).
///
/// - Without a token, only loopback `Host` names are served (`localhost`, `127.0.0.1`, `[::1]`, bare or with the
///   listener's port): anything else is 403 `host_not_allowed`, so a rebound name cannot read answers.
/// - With or without a token, a request whose `Origin` is not the listener's own (`http://` and the `Host` it was
///   addressed by) is 403 `origin_not_allowed`; the API serves no pages, so no browser page may call it.
/// - A request with a body must be `application/json` (415 `unsupported_media_type`): the content
///   types a page may send cross-site without a preflight (`text/plain`, forms) are never read.
struct AdminRequestGuard<Context: RequestContext>: RouterMiddleware {
    /// Whether the API has a bearer token.
    let hasToken: Bool
    /// The port the listener is bound to, once known (the configured port may be 0).
    let port: NIOLockedValueBox<Int>

    static var loopbackNames: [String] { ["localhost", "127.0.0.1", "[::1]"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let refusal = self.refusal(of: request) { return refusal.response }
        return try await next(request, context)
    }

    /// Why `request` is not served, or `nil`.
    func refusal(of request: Request) -> AdminError? {
        // The first Host is the request's authority; HTTPTypes keeps any further one among the fields.
        if !request.headers[values: .extraHost].isEmpty {
            return AdminError(status: .badRequest, type: "bad_request", message: "more than one Host header")
        }
        let host = request.head.authority?.lowercased()
        if !self.hasToken, !self.isLoopback(host) {
            return AdminError(
                status: .forbidden, type: "host_not_allowed",
                message: "Host '\(host ?? "")' is not served: without admin.token only localhost, 127.0.0.1 and [::1] are")
        }
        let origins = request.headers[values: .origin]
        if let origin = origins.first, origins.count > 1 || origin.lowercased() != "http://\(host ?? "")" {
            return AdminError(
                status: .forbidden, type: "origin_not_allowed",
                message: "Origin '\(origins.joined(separator: ", "))' is not this listener's: the management API serves no pages")
        }
        let hasBody = request.headers[.transferEncoding] != nil || (request.headers[.contentLength].flatMap(Int.init) ?? 0) > 0
        if hasBody {
            let type = request.headers[.contentType]?.split(separator: ";").first.map { $0.filter { !$0.isWhitespace }.lowercased() }
            guard type == "application/json" else {
                return AdminError(
                    status: .unsupportedMediaType, type: "unsupported_media_type",
                    message: "request bodies must be Content-Type: application/json (got \(type.map { "'\($0)'" } ?? "none"))")
            }
        }
        return nil
    }

    private func isLoopback(_ host: String?) -> Bool {
        guard let host else { return false }
        let port = self.port.withLockedValue { $0 }
        return Self.loopbackNames.contains { host == $0 || host == "\($0):\(port)" }
    }
}

extension HTTPField.Name {
    /// `Host` among the fields: HTTPTypes moves only the first `Host` of an HTTP/1 request to its authority.
    static let extraHost = HTTPField.Name("Host")!
}
