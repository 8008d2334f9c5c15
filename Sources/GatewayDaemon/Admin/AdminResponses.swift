import FoundationEssentials
import GatewayCore
import HTTPTypes
import Hummingbird
import Metrics
import NIOCore
import NIOHTTP1

/// An error answer of the management API: `{"type": "...", "error": "...", "status": N}`.
struct AdminError: Error, Sendable {
    var status: HTTPResponse.Status
    var type: String
    var message: String

    static func badRequest(_ message: String) -> AdminError { AdminError(GatewayError.badRequest(message)) }

    /// The answer for a gateway operation's failure: its kind, its sentence, and the kind's HTTP status.
    init(_ error: GatewayError) {
        self.type = error.kind.rawValue
        self.message = error.description
        self.status = HTTPResponse.Status(code: Int(error.kind.httpStatus.code))
    }

    init(status: HTTPResponse.Status, type: String, message: String) {
        self.status = status
        self.type = type
        self.message = message
    }

    var response: Response {
        struct Body: Encodable {
            var type: String
            var error: String
            var status: Int
        }
        return AdminJSON.response(Body(type: self.type, error: self.message, status: self.status.code), status: self.status)
    }
}

/// JSON bodies in and out.
/// How much of a request body the management API reads, and for how long.
struct AdminBodyLimit: Sendable {
    /// `admin.max_body_size`.
    var bytes: Int
    /// `admin.request_timeout`.
    var timeout: Duration
}

enum AdminJSON {
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: AdminBodyLimit) async throws -> T {
        let buffer = try await self.body(of: request, limit: limit)
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let DecodingError.keyNotFound(key, _) {
            throw AdminError.badRequest("missing field '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context) {
            throw AdminError.badRequest("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch let DecodingError.dataCorrupted(context) {
            throw AdminError.badRequest("invalid JSON body: \(context.debugDescription)")
        } catch let error as AdminError {
            throw error
        } catch let error as ConfigError {
            throw AdminError.badRequest("\(error)")
        } catch {
            throw AdminError.badRequest("invalid JSON body")
        }
    }

    /// The action fields of a JSON request body, accepting only `allowed` fields.
    static func fields(from request: Request, allowed: Set<GatewayAction.Field>, limit: AdminBodyLimit) async throws -> GatewayAction.Fields {
        try GatewayAction.Fields(json: try await self.body(of: request, limit: limit).readableBytesView, allowed: allowed)
    }

    /// The request's body, at most `limit.bytes` (413 beyond) and within `limit.timeout` (408 after: a client that
    /// trickles its body does not hold the connection).
    private static func body(of request: Request, limit: AdminBodyLimit) async throws -> ByteBuffer {
        let body = request.body
        return try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask {
                do {
                    return try await body.collect(upTo: limit.bytes)
                } catch is CancellationError {
                    return nil
                } catch {
                    throw AdminError(status: .contentTooLarge, type: "body_too_large", message: "request body larger than \(limit.bytes) bytes")
                }
            }
            group.addTask {
                try? await Task.sleep(for: limit.timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard case .some(.some(let buffer)) = try await group.next() else {
                throw AdminError(status: .requestTimeout, type: "request_timeout", message: "request body not received within \(limit.timeout) (admin.request_timeout)")
            }
            return buffer
        }
    }

    static let noContent = Response(status: .noContent)
}

/// Turns every failure into the API's JSON error shape, unknown routes and methods included, and counts every
/// answer by status in `wsgate_admin_responses_total{status}` (refusals such as 413, 408, 403 and 401 included).
struct AdminErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = await self.respond(request, context: context, next: next)
        Counter(label: "wsgate_admin_responses_total", dimensions: [("status", String(response.status.code))]).increment()
        return response
    }

    private func respond(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async -> Response {
        do {
            return try await next(request, context)
        } catch let error as AdminError {
            return error.response
        } catch let error as GatewayError {
            return AdminError(error).response
        } catch let error as HTTPError {
            let type = error.status == .notFound ? "not_found" : (error.status == .methodNotAllowed ? "method_not_allowed" : "http_error")
            let message = error.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : (error.body ?? error.status.reasonPhrase)
            return AdminError(status: error.status, type: type, message: message).response
        } catch {
            return AdminError(status: .internalServerError, type: "internal", message: "\(error)").response
        }
    }
}

/// Requires `Authorization: Bearer TOKEN` (compared in constant time) except on the public endpoints.
struct AdminAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?
    static var publicPaths: Set<String> { ["/healthz", "/metrics", "/openapi.yaml"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = self.token, !Self.publicPaths.contains(request.uri.path) else {
            return try await next(request, context)
        }
        let presented = request.headers[.authorization].flatMap { value -> String? in
            value.lowercased().hasPrefix("bearer ") ? String(value.dropFirst(7)) : nil
        }
        guard let presented, Self.constantTimeEqual(presented, token) else {
            var response = AdminError(status: .unauthorized, type: "unauthorized", message: presented == nil ? "missing bearer token" : "wrong bearer token").response
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }
}
