import FoundationEssentials
import GatewayCluster
import GatewayCore
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import WebSocketEngine

/// The management API (JSON over HTTP): every gateway operation, health, metrics and the OpenAPI document.
enum AdminAPI {
    /// The fields a request body may carry: a message to one socket, and a broadcast.
    private static let messageFields: Set<GatewayAction.Field> = [.message, .type]
    private static let broadcastFields: Set<GatewayAction.Field> = [.message, .type, .path, .route, .socketType, .groups, .exclude]

    /// The router of the admin listener.
    static func router(
        gateway: Gateway,
        token: String?,
        port: NIOLockedValueBox<Int>,
        metrics: @escaping @Sendable () -> String,
        openAPI: String,
        bodyLimit: AdminBodyLimit,
        openOutbound: @escaping @Sendable (OutboundSection) async throws -> SocketID,
        nodes: @escaping @Sendable () async throws -> [NodeInfo]
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: AdminErrorMiddleware())
        router.add(middleware: AdminRequestGuard(hasToken: token != nil, port: port))
        router.add(middleware: AdminAuthMiddleware(token: token))
        var endpoints = Endpoints(router: router)

        endpoints.on(.get, "/healthz") { _, _ in
            AdminJSON.response(["status": AnyEncodable("ok"), "connections": AnyEncodable(gateway.connectionCount)])
        }
        endpoints.on(.get, "/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: metrics())))
        }
        endpoints.on(.get, "/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: openAPI)))
        }
        endpoints.on(.get, "/v1/nodes") { _, _ in
            do {
                return AdminJSON.response(["nodes": try await nodes()])
            } catch let error as ClusterError {
                throw AdminError(status: .serviceUnavailable, type: error.kind.rawValue, message: error.description)
            }
        }
        endpoints.on(.get, "/v1/connections") { request, _ in
            let ids = gateway.list(try GatewayAction.filter(self.query(request, filter: true)))
            return AdminJSON.response(["connections": ids.map(\.rawValue)])
        }
        endpoints.on(.delete, "/v1/connections") { request, _ in
            var fields = try self.query(request, filter: true, close: true)
            fields.action = "close_all"
            return try await self.perform(GatewayAction(fields), on: gateway)
        }
        endpoints.on(.get, "/v1/connections/:socket_id") { _, context in
            AdminJSON.response(try gateway.info(try self.pathParameter(context, "socket_id")))
        }
        endpoints.on(.delete, "/v1/connections/:socket_id") { request, context in
            var fields = try self.query(request, close: true)
            fields.action = "close"
            fields.socketID = try self.pathParameter(context, "socket_id")
            return try await self.perform(GatewayAction(fields), on: gateway)
        }
        endpoints.on(.post, "/v1/connections/:socket_id/messages") { request, context in
            let id = try self.pathParameter(context, "socket_id")
            _ = try gateway.connection(id)
            var fields = try await AdminJSON.fields(from: request, allowed: self.messageFields, limit: bodyLimit)
            fields.action = "send"
            fields.socketID = id
            return try await self.perform(GatewayAction(fields), on: gateway)
        }
        endpoints.on(.post, "/v1/broadcast") { request, _ in
            var fields = try await AdminJSON.fields(from: request, allowed: self.broadcastFields, limit: bodyLimit)
            fields.action = "broadcast"
            return try await self.perform(GatewayAction(fields), on: gateway)
        }
        endpoints.on(.put, "/v1/connections/:socket_id/groups/:group") { _, context in
            try await self.perform(self.groupAction("subscribe", context), on: gateway)
        }
        endpoints.on(.delete, "/v1/connections/:socket_id/groups/:group") { _, context in
            try await self.perform(self.groupAction("unsubscribe", context), on: gateway)
        }
        endpoints.on(.post, "/v1/outbound") { request, _ in
            let section = try await AdminJSON.decode(OutboundSection.self, from: request, limit: bodyLimit)
            let id = try await openOutbound(section)
            let state = (try? gateway.info(id.rawValue))?.state ?? "closing"
            return AdminJSON.response(["socket_id": id.rawValue, "state": state], status: .created)
        }
        endpoints.on(.get, "/v1/groups") { _, _ in
            AdminJSON.response(["groups": gateway.groups()])
        }
        endpoints.answerOtherMethods()
        return router
    }

    /// Registers the API's routes, remembering each path's methods so that another method on a known path is
    /// answered 405 with `Allow` (not 404).
    private struct Endpoints {
        let router: Router<BasicRequestContext>
        private var methods: [(path: String, methods: [HTTPRequest.Method])] = []

        init(router: Router<BasicRequestContext>) {
            self.router = router
        }

        mutating func on(
            _ method: HTTPRequest.Method, _ path: String,
            _ handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Response
        ) {
            self.router.on(RouterPath(path), method: method, use: handler)
            if let index = self.methods.firstIndex(where: { $0.path == path }) {
                self.methods[index].methods.append(method)
            } else {
                self.methods.append((path, [method]))
            }
        }

        func answerOtherMethods() {
            for (path, allowed) in self.methods {
                let allow = allowed.map(\.rawValue).joined(separator: ", ")
                for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch, .options] where !allowed.contains(method) {
                    self.router.on(RouterPath(path), method: method) { request, _ in
                        var response = AdminError(
                            status: .methodNotAllowed, type: "method_not_allowed",
                            message: "\(request.method) is not allowed on \(request.uri.path) (allowed: \(allow))").response
                        response.headers[.allow] = allow
                        return response
                    }
                }
            }
        }
    }

    /// Carries out an action and renders its result: 204 for one socket, the delivery report for a broadcast, the
    /// count for a close of many.
    private static func perform(_ action: GatewayAction, on gateway: Gateway) async throws -> Response {
        switch try await gateway.perform(action) {
        case .done:
            return AdminJSON.noContent
        case .broadcast(let result):
            struct Answer: Encodable {
                var delivered: Int
                var failures: [BroadcastFailure]
            }
            return AdminJSON.response(Answer(delivered: result.delivered, failures: result.failures))
        case .count(let count):
            return AdminJSON.response(["closed": count])
        }
    }

    private static func groupAction(_ name: String, _ context: BasicRequestContext) throws -> GatewayAction {
        var fields = GatewayAction.Fields()
        fields.action = name
        fields.socketID = try self.pathParameter(context, "socket_id")
        fields.group = try self.pathParameter(context, "group")
        return try GatewayAction(fields)
    }

    /// A path parameter, percent-decoded (clients escape `=` and other characters in ids and group names).
    private static func pathParameter(_ context: BasicRequestContext, _ name: String) throws -> String {
        let raw = try context.parameters.require(name)
        let decoded = PercentEncoding.decode(Substring(raw))
        guard !decoded.isEmpty, !decoded.contains(where: { $0.isASCII && $0.asciiValue! < 0x20 }) else {
            throw GatewayError.badRequest("invalid \(name) '\(raw)'")
        }
        return decoded
    }

    /// The action fields of a query string: the filter (`route`, `path`, `group` repeated, `socket_type`) and the
    /// close (`code`, `reason`) where the endpoint takes them.
    private static func query(_ request: Request, filter: Bool = false, close: Bool = false) throws -> GatewayAction.Fields {
        let query = request.uri.queryParameters
        var fields = GatewayAction.Fields()
        if filter {
            fields.route = query["route"].map(String.init)
            fields.path = query["path"].map(String.init)
            let groups = query.getAll("group").map { String($0) }
            fields.groups = groups.isEmpty ? nil : groups
            fields.socketType = query["socket_type"].map(String.init)
        }
        if close {
            fields.code = query["code"].map(String.init)
            fields.reason = query["reason"].map(String.init)
        }
        return fields
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
