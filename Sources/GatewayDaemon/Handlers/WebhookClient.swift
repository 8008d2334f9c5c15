import AsyncHTTPClient
import Crypto
import FoundationEssentials
import GatewayCore
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Posts event records to a backend: JSON bodies signed with HMAC-SHA256, a timeout per request, retries with
/// exponential backoff, and a bound on requests in flight across all connections of a route.
final class WebhookClient: Sendable {
    /// What came back from a delivered event.
    struct Answer: Sendable {
        var status: HTTPResponseStatus
        var contentType: String?
        var body: ByteBuffer
    }

    /// Why an event could not be delivered.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let settings: WebhookSection
    private let http: HTTPClient
    private let permits: AsyncPermits
    private let logger: Logger
    private let route: String

    init(settings: WebhookSection, http: HTTPClient, route: String, logger: Logger) {
        self.settings = settings
        self.http = http
        self.route = route
        self.permits = AsyncPermits(settings.concurrency)
        self.logger = logger
    }

    /// The signature header value: `t=TIMESTAMP,v1=HEX(HMAC-SHA256(secret, "TIMESTAMP." + body))`.
    static func signature(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(timestamp).".utf8)
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(timestamp),v1=" + mac.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    /// Delivers one record, retrying transport failures and 5xx answers; a 4xx answer is final.
    func deliver(_ record: GatewayEventRecord) async throws -> Answer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = Array(try encoder.encode(record))
        // The same id on every attempt: a backend that saw it already answers again without acting twice.
        let delivery = UUID().uuidString.lowercased()
        var attempt = 0
        while true {
            let started = NIODeadline.now()
            let outcome: Result<Answer, Failure>
            do {
                let answer = try await self.permits.with { try await self.post(body, event: record.type, delivery: delivery, attempt: attempt + 1) }
                outcome = (500..<600).contains(answer.status.code) ? .failure(Failure(description: "backend answered \(answer.status.code)")) : .success(answer)
                Timer(label: "wsgate_webhook_duration_seconds", dimensions: [("route", self.route), ("event", record.type)])
                    .recordNanoseconds((NIODeadline.now() - started).nanoseconds)
            } catch {
                outcome = .failure(Failure(description: "\(error)"))
            }
            switch outcome {
            case .success(let answer):
                return answer
            case .failure(let failure) where attempt >= self.settings.retries:
                Counter(label: "wsgate_webhook_failures_total", dimensions: [("route", self.route), ("event", record.type)]).increment()
                self.logger.error("webhook delivery failed", metadata: ["event": "\(record.type)", "socket_id": "\(record.info.socketID)", "error": "\(failure)"])
                throw failure
            case .failure(let failure):
                self.logger.warning("webhook delivery failed, retrying", metadata: ["attempt": "\(attempt + 1)", "error": "\(failure)"])
                attempt += 1
                try await Task.sleep(nanoseconds: UInt64(self.settings.backoff.nanoseconds) << UInt64(min(attempt - 1, 16)))
            }
        }
    }

    private func post(_ body: [UInt8], event: String, delivery: String, attempt: Int) async throws -> Answer {
        var request = HTTPClientRequest(url: self.settings.url)
        request.method = .POST
        let timestamp = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "wsgate")
        request.headers.add(name: "X-WSGate-Event", value: event)
        request.headers.add(name: "X-WSGate-Timestamp", value: String(timestamp))
        request.headers.add(name: "X-WSGate-Delivery", value: delivery)
        request.headers.add(name: "X-WSGate-Attempt", value: String(attempt))
        if let secret = self.settings.secret {
            request.headers.add(name: "X-WSGate-Signature", value: Self.signature(secret: secret, timestamp: timestamp, body: body))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await self.http.execute(request, timeout: self.settings.timeout)
        let answer = try await response.body.collect(upTo: 4 << 20)
        return Answer(status: response.status, contentType: response.headers["content-type"].first, body: answer)
    }
}

/// A counting semaphore for async code.
final class AsyncPermits: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: NIOLockedValueBox<State>

    init(_ count: Int) {
        self.state = NIOLockedValueBox(State(available: count))
    }

    func with<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { continuation in
            let granted = self.state.withLockedValue { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
        defer {
            let next = self.state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                if state.waiters.isEmpty {
                    state.available += 1
                    return nil
                }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
