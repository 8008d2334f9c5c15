import Foundation
import NIOCore
import NIOHTTP1
import Testing
import WebSocketEngine
import WebSocketTestKit

/// What the gateway shows of itself: the negotiated extension and subprotocol, wire bytes beside payload bytes,
/// the whole info record, and log lines an operator can tune.
@Suite("wsgate shows what it negotiated and moved", .serialized)
struct SelfReportTests {
    static let config = """
        compression: {enabled: true}
        routes:
          - path: /echo
            handler: echo
            subprotocols: [chat.v2, chat.v1]
        """

    @Test func infoEventsAndTheOpenLineShowTheNegotiatedCompressionAndSubprotocol() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        var client = WebSocketClientConfiguration(subprotocols: ["chat.v1"])
        client.connection.compression = .init()
        let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/echo", configuration: client)
        #expect(socket.compression != nil && socket.subprotocol == "chat.v1")
        let text = String(repeating: "compress me please ", count: 200)
        try await socket.send(text: text)
        #expect(try await socket.receive() == .text(text))

        let id = (DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections").body)["connections"] as? [String])?.first ?? ""
        let (status, body) = try await daemon.admin(.GET, "/v1/connections/\(id)")
        #expect(status == 200)
        // JSON answers do not escape "/".
        #expect(body.contains(#""uri":"ws://127.0.0.1:\#(daemon.webSocketPort)/echo""#) && !body.contains(#"\/"#))
        let info = DaemonProcess.json(body)
        #expect(info["subprotocol"] as? String == "chat.v1")
        let compression = info["compression"] as? [String: Any] ?? [:]
        #expect(compression["extension"] as? String == "permessage-deflate")
        #expect((compression["negotiated"] as? String)?.hasPrefix("permessage-deflate") == true)
        #expect(compression["server_max_window_bits"] as? Int == 15 && compression["client_no_context_takeover"] as? Bool == false)
        // What compression saved: the payload bytes against the frames on the wire.
        let bytesIn = info["bytes_in"] as? Int ?? 0
        let wireIn = info["wire_bytes_in"] as? Int ?? 0
        let wireOut = info["wire_bytes_out"] as? Int ?? 0
        #expect(bytesIn == text.utf8.count)
        #expect(wireIn > 0 && wireIn < bytesIn / 4, "wire \(wireIn) payload \(bytesIn)")
        #expect(wireOut > 0 && wireOut < bytesIn / 4)
        let wireMetric = try await daemon.metric(#"wsgate_wire_bytes_total{route="/echo",direction="in"}"#)
        let payloadMetric = try await daemon.metric(#"wsgate_bytes_total{route="/echo",direction="in"}"#)
        #expect(wireMetric >= Double(wireIn) && wireMetric < payloadMetric / 4)
        #expect(try await daemon.metric(#"wsgate_connections_total{route="/echo",result="accepted",reason="101"}"#) == 1)

        let opened = try await daemon.logLine(containing: "connection opened")
        #expect(opened.contains("subprotocol=chat.v1") && opened.contains("compression=permessage-deflate"))
        try await socket.close()
        let closed = try await daemon.logLine(containing: "connection closed")
        #expect(closed.contains("wire_bytes_in="))
        #expect(await daemon.stop() == 0)
    }

    @Test func infoCarriesEveryDocumentedFieldWithNullWhereEmpty() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/echo")
        let id = (DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections").body)["connections"] as? [String])?.first ?? ""
        let body = try await daemon.admin(.GET, "/v1/connections/\(id)").body
        let info = DaemonProcess.json(body)
        let documented = [
            "socket_id", "socket_type", "uri", "route", "path", "headers", "parameters", "query_string", "subprotocol",
            "compression", "secure", "remote_address", "local_address", "client_certificate", "groups", "attributes",
            "connected_at", "last_active_at", "state", "messages_in", "messages_out", "bytes_in", "bytes_out",
            "wire_bytes_in", "wire_bytes_out",
        ]
        #expect(Set(info.keys) == Set(documented), "\(body)")
        for empty in ["subprotocol", "compression", "client_certificate"] {
            #expect(info[empty] is NSNull, "\(empty) in \(body)")
        }
        try await socket.close()
        #expect(await daemon.stop() == 0)
    }

    @Test func connectionLinesCanBeMovedToDebugOrSampled() async throws {
        // At `debug` with the log at `info`, no connection line; refusals are still logged.
        let quiet = try await DaemonProcess(yaml: Self.config + "\nlog: {connections: debug}")
        for _ in 0..<3 {
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(quiet.webSocketPort)/echo")
            try await socket.close()
        }
        _ = try await quiet.upgrade("/nowhere")
        _ = try await quiet.logLine(containing: "refused: 404")
        #expect(await quiet.stop() == 0)
        #expect(try await !quiet.wholeLog().contains { $0.contains("connection opened") || $0.contains("connection closed") })

        // One in four: some of 40 connections are logged, not all, and each logged open has its close.
        let sampled = try await DaemonProcess(yaml: Self.config + "\nlog: {connections: info, connection_sample: 4}")
        for _ in 0..<40 {
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(sampled.webSocketPort)/echo")
            try await socket.close()
        }
        #expect(await sampled.stop() == 0)
        let lines = try await sampled.wholeLog()
        let opened = Set(lines.filter { $0.contains("connection opened") }.compactMap(Self.socketID))
        let closed = Set(lines.filter { $0.contains("connection closed") }.compactMap(Self.socketID))
        #expect(opened.count > 0 && opened.count < 40, "\(opened.count) of 40 logged")
        #expect(opened == closed)
    }

    @Test func aBadConnectionLogSettingNamesTheKey() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-log-\(UUID().uuidString).yaml")
        try "log: {connections: loud, connection_sample: 0}\nroutes: [{path: /e, handler: echo}]\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, text) = try await DaemonProcess.run(["check", "--config", file.path])
        #expect(status == 1 && text.contains("log.connections") && text.contains("log.connection_sample"), "\(text)")
    }

    private static func socketID(_ line: String) -> String? {
        guard let range = line.range(of: "socket_id=") else { return nil }
        return String(line[range.upperBound...].prefix { !$0.isWhitespace })
    }
}
