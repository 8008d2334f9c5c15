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
/// exponential backoff, a bound on requests in flight across all connections of a route, and a circuit breaker
/// (``WebhookCircuit``) that all of them share.
final class WebhookClient: Sendable {
    /// What came back from a delivered event.
    struct Answer: Sendable {
        var status: HTTPResponseStatus
        var contentType: String?
        var body: ByteBuffer
    }

    /// How long one delivery may go on, and whether it is still wanted before each retry.
    struct Budget: Sendable {
        /// No attempt starts or runs past this (the handshake's deadline for `open`).
        var deadline: NIODeadline?
        /// Asked before each retry: a delivery nobody waits for any more (its connection is gone) stops.
        var isWanted: @Sendable () -> Bool = { true }
        /// Whether it is retried at all.
        var retries = true
    }

    let settings: WebhookSection
    private let http: HTTPClient
    private let permits: AsyncPermits
    private let logger: Logger
    /// The route's path ("outbound" for an outbound socket's webhook), as logs and metrics name it.
    let route: String
    private let circuit: NIOLockedValueBox<WebhookCircuit>
    private let circuitOpen: Gauge

    init(settings: WebhookSection, http: HTTPClient, route: String, logger: Logger) {
        self.settings = settings
        self.http = http
        self.route = route
        self.permits = AsyncPermits(settings.concurrency)
        self.logger = logger
        self.circuit = NIOLockedValueBox(WebhookCircuit(threshold: settings.circuitFailures, openFor: settings.circuitOpenFor))
        self.circuitOpen = Gauge(label: "wsgate_webhook_circuit_open", dimensions: [("route", route)])
        self.circuitOpen.record(0)
    }

    /// The signature header value: `t=TIMESTAMP,v1=HEX(HMAC-SHA256(secret, "TIMESTAMP." + body))`.
    static func signature(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(timestamp).".utf8)
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(timestamp),v1=" + mac.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    /// Delivers one record, retrying failures (no connection, a timeout, a 5xx answer) within `budget`; a 4xx
    /// answer is final. Fails at once while the circuit is open. `metadata` names the connection in log lines.
    func deliver(_ record: GatewayEventRecord, budget: Budget = Budget(), metadata: Logger.Metadata) async throws(WebhookFailure) -> Answer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body: [UInt8]
        do {
            body = Array(try encoder.encode(record))
        } catch {
            throw .unreachable("the event could not be encoded: \(error)")
        }
        // The same id on every attempt: a backend that saw it already answers again without acting twice.
        let delivery = UUID().uuidString.lowercased()
        var metadata = metadata
        metadata["route"] = "\(self.route)"
        metadata["event"] = "\(record.type)"
        var attempt = 0
        while true {
            attempt += 1
            let failure: WebhookFailure
            do {
                return try await self.attempt(body, event: record.type, delivery: delivery, attempt: attempt, budget: budget)
            } catch {
                failure = error
            }
            let backoff = self.settings.backoff * Int64(1 << min(attempt - 1, 16))
            let retry = budget.retries && attempt <= self.settings.retries && !failure.isCircuitOpen
                && budget.deadline.map { .now() + backoff < $0 } ?? true && budget.isWanted()
            metadata["attempt"] = "\(attempt)"
            metadata["error"] = "\(failure)"
            guard retry else {
                Counter(label: "wsgate_webhook_failures_total", dimensions: [("route", self.route), ("event", record.type)]).increment()
                self.logger.error("webhook delivery failed", metadata: metadata)
                throw failure
            }
            self.logger.warning("webhook delivery failed, retrying", metadata: metadata)
            try? await Task.sleep(nanoseconds: UInt64(backoff.nanoseconds))
        }
    }

    /// One attempt, if the circuit lets it through; its outcome goes to the circuit.
    private func attempt(_ body: [UInt8], event: String, delivery: String, attempt: Int, budget: Budget) async throws(WebhookFailure) -> Answer {
        let now = NIODeadline.now()
        var timeout = self.settings.timeout
        if let deadline = budget.deadline {
            guard deadline > now else { throw .timedOut(.zero) }
            timeout = min(timeout, deadline - now)
        }
        if case .failFast(let retryAfter) = self.circuit.withLockedValue({ $0.permission(now: now) }) {
            throw .circuitOpen(retryAfter: retryAfter)
        }
        let outcome: Result<Answer, WebhookFailure>
        do {
            let answer = try await self.permits.with {
                try await self.post(body, event: event, delivery: delivery, attempt: attempt, timeout: timeout)
            }
            Timer(label: "wsgate_webhook_duration_seconds", dimensions: [("route", self.route), ("event", event)])
                .recordNanoseconds((NIODeadline.now() - now).nanoseconds)
            outcome = answer.status.code >= 500 ? .failure(.backendError(answer.status.code)) : .success(answer)
        } catch {
            outcome = .failure(WebhookFailure(error, timeout: timeout))
        }
        let transition = self.circuit.withLockedValue { circuit in
            switch outcome {
            case .success: return circuit.succeeded()
            case .failure: return circuit.failed(now: .now())
            }
        }
        self.announce(transition, after: outcome)
        return try outcome.get()
    }

    /// Logs and records a change of the circuit.
    private func announce(_ transition: WebhookCircuit.Transition, after outcome: Result<Answer, WebhookFailure>) {
        switch transition {
        case .none:
            return
        case .opened(let failures):
            self.circuitOpen.record(1)
            var metadata: Logger.Metadata = ["route": "\(self.route)", "failures_in_a_row": "\(failures)"]
            if case .failure(let failure) = outcome { metadata["error"] = "\(failure)" }
            self.logger.error(
                "webhook backend failing: deliveries fail at once for \(WebhookFailure.seconds(self.settings.circuitOpenFor)), then one probe",
                metadata: metadata)
        case .closed:
            self.circuitOpen.record(0)
            self.logger.info("webhook backend answering again: deliveries resume", metadata: ["route": "\(self.route)"])
        }
    }

    private func post(_ body: [UInt8], event: String, delivery: String, attempt: Int, timeout: TimeAmount) async throws -> Answer {
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
        let response = try await self.http.execute(request, timeout: timeout)
        let answer = try await response.body.collect(upTo: 4 << 20)
        return Answer(status: response.status, contentType: response.headers["content-type"].first, body: answer)
    }
}
