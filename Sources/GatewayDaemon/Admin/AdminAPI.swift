import FoundationEssentials
import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore
import WebSocketEngine

/// The management API (JSON over HTTP): every gateway operation, health, metrics and the OpenAPI document.
enum AdminAPI {
    struct MessageBody: Decodable {
        var message: String
        var type: String?
    }

    struct BroadcastBody: Decodable {
        var message: String
        var type: String?
        var path: String?
        var socketType: String?
        var groups: [String]?

        enum CodingKeys: String, CodingKey {
            case message, type, path, groups
            case socketType = "socket_type"
        }
    }

    /// The router of the admin listener.
    static func router(
        gateway: Gateway,
        token: String?,
        metrics: @escaping @Sendable () -> String,
        openAPI: String,
        openOutbound: @escaping @Sendable (OutboundSection) async throws -> SocketID
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: AdminErrorMiddleware())
        router.add(middleware: AdminAuthMiddleware(token: token))
        let bodyLimit = gateway.configuration.server.connection.maxMessageSize * 2 + 64 * 1024

        router.get("/healthz") { _, _ in
            AdminJSON.response(["status": AnyEncodable("ok"), "connections": AnyEncodable(gateway.connectionCount)])
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: metrics())))
        }
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: openAPI)))
        }
        router.get("/v1/connections") { request, _ in
            let ids = gateway.list(try self.filter(request))
            return AdminJSON.response(["connections": ids.map(\.rawValue)])
        }
        router.delete("/v1/connections") { request, _ in
            let (code, reason) = try self.closeParameters(request)
            let closed = await gateway.closeAll(try self.filter(request), code: code, reason: reason)
            return AdminJSON.response(["closed": closed])
        }
        router.get("/v1/connections/:socket_id") { _, context in
            AdminJSON.response(try gateway.info(try self.pathParameter(context, "socket_id")))
        }
        router.delete("/v1/connections/:socket_id") { request, context in
            let (code, reason) = try self.closeParameters(request)
            try await gateway.close(try self.pathParameter(context, "socket_id"), code: code, reason: reason)
            return AdminJSON.noContent
        }
        router.post("/v1/connections/:socket_id/messages") { request, context in
            let id = try self.pathParameter(context, "socket_id")
            _ = try gateway.connection(id)
            let body = try await AdminJSON.decode(MessageBody.self, from: request, limit: bodyLimit)
            try await gateway.send(id, try self.message(body.message, type: body.type))
            return AdminJSON.noContent
        }
        router.post("/v1/broadcast") { request, _ in
            let body = try await AdminJSON.decode(BroadcastBody.self, from: request, limit: bodyLimit)
            let message = try self.message(body.message, type: body.type)
            var filter = ConnectionFilter(path: body.path, groups: body.groups)
            filter.socketType = try self.socketType(body.socketType)
            let result = await gateway.broadcast(message, to: filter)
            struct Answer: Encodable {
                var delivered: Int
                var failures: [BroadcastFailure]
            }
            return AdminJSON.response(Answer(delivered: result.delivered, failures: result.failures))
        }
        router.put("/v1/connections/:socket_id/groups/:group") { _, context in
            try gateway.subscribe(try self.pathParameter(context, "socket_id"), to: try self.pathParameter(context, "group"))
            return AdminJSON.noContent
        }
        router.delete("/v1/connections/:socket_id/groups/:group") { _, context in
            try gateway.unsubscribe(try self.pathParameter(context, "socket_id"), from: try self.pathParameter(context, "group"))
            return AdminJSON.noContent
        }
        router.post("/v1/outbound") { request, _ in
            let section = try await AdminJSON.decode(OutboundSection.self, from: request, limit: 1 << 20)
            let id = try await openOutbound(section)
            let state = (try? gateway.info(id.rawValue))?.state ?? "closing"
            return AdminJSON.response(["socket_id": id.rawValue, "state": state], status: .created)
        }
        router.get("/v1/groups") { _, _ in
            AdminJSON.response(["groups": gateway.groups()])
        }
        return router
    }

    /// A path parameter, percent-decoded (clients escape `=` and other characters in ids and group names).
    private static func pathParameter(_ context: BasicRequestContext, _ name: String) throws -> String {
        let raw = try context.parameters.require(name)
        let decoded = PercentEncoding.decode(Substring(raw))
        guard !decoded.isEmpty, !decoded.contains(where: { $0.isASCII && $0.asciiValue! < 0x20 }) else {
            throw AdminError.badRequest("invalid \(name) '\(raw)'")
        }
        return decoded
    }

    private static func filter(_ request: Request) throws -> ConnectionFilter {
        let query = request.uri.queryParameters
        var filter = ConnectionFilter()
        filter.route = query["route"].map(String.init)
        filter.path = query["path"].map(String.init)
        let groups = query.getAll("group").map { String($0) }
        filter.groups = groups.isEmpty ? nil : groups
        filter.socketType = try self.socketType(query["socket_type"].map(String.init))
        return filter
    }

    private static func socketType(_ text: String?) throws -> SocketType? {
        guard let text, text != "all" else { return nil }
        guard let type = SocketType(rawValue: text) else {
            throw AdminError.badRequest("socket_type must be inbound, outbound or all, not '\(text)'")
        }
        return type
    }

    private static func closeParameters(_ request: Request) throws -> (WebSocketCloseCode, String) {
        let query = request.uri.queryParameters
        var code = WebSocketCloseCode.normalClosure
        if let text = query["code"] {
            guard let value = UInt16(String(text)), WebSocketCloseCode(rawValue: value).isValidOnWire else {
                throw AdminError.badRequest("code must be a close code that may be sent (1000-1003, 1007-1014, 3000-4999), not '\(text)'")
            }
            code = WebSocketCloseCode(rawValue: value)
        }
        let reason = query["reason"].map(String.init) ?? ""
        guard reason.utf8.count <= 123 else { throw AdminError.badRequest("reason must be at most 123 bytes of UTF-8") }
        return (code, reason)
    }

    private static func message(_ text: String, type: String?) throws -> WebSocketMessage {
        switch type ?? "data-text" {
        case "data-text":
            return .text(text)
        case "data-binary":
            guard let data = Data(base64Encoded: text) else { throw AdminError.badRequest("message is not valid base64 for data-binary") }
            return .binary(ByteBuffer(bytes: data))
        case let other:
            throw AdminError.badRequest("type must be data-text or data-binary, not '\(other)'")
        }
    }
}

/// A type-erased `Encodable`, for small ad-hoc JSON objects.
struct AnyEncodable: Encodable {
    private let encodeValue: (any Encoder) throws -> Void

    init(_ value: some Encodable) {
        self.encodeValue = value.encode(to:)
    }

    func encode(to encoder: any Encoder) throws {
        try self.encodeValue(encoder)
    }
}
