import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a webhook delivery failed, in words an operator reads in one line.
enum WebhookFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// No connection: refused, reset, no such host, a TLS failure.
    case unreachable(String)
    /// No answer within the attempt's time (the webhook's `timeout`, or what was left of the handshake's).
    case timedOut(TimeAmount)
    /// The backend answered with a 5xx status.
    case backendError(UInt)
    /// The route's circuit is open after repeated failures: nothing was sent.
    case circuitOpen(retryAfter: TimeAmount)

    /// The failure `error` of an attempt given `timeout` stands for.
    init(_ error: any Error, timeout: TimeAmount) {
        switch error {
        case let error as HTTPClientError where [.deadlineExceeded, .connectTimeout, .readTimeout, .writeTimeout, .getConnectionFromPoolTimeout].contains(error):
            self = .timedOut(timeout)
        case let error as HTTPClientError where error == .remoteConnectionClosed:
            self = .unreachable("the backend closed the connection without answering")
        case let error as NIOConnectionError:
            if let dns = error.dnsAError ?? error.dnsAAAAError {
                self = .unreachable("host \(error.host) not found (\(dns))")
            } else {
                self = .unreachable(error.connectionErrors.first.map { Self.text($0.error) } ?? "no address for host \(error.host)")
            }
        case ChannelError.connectTimeout:
            self = .timedOut(timeout)
        default:
            self = .unreachable(Self.text(error))
        }
    }

    var isCircuitOpen: Bool {
        if case .circuitOpen = self { return true }
        return false
    }

    var description: String {
        switch self {
        case .unreachable(let why): return why
        case .timedOut(let timeout): return "no answer within \(Self.seconds(timeout))"
        case .backendError(let code): return "the backend answered \(code)"
        case .circuitOpen(let retryAfter):
            return "not sent: the backend kept failing, deliveries fail at once for \(Self.seconds(retryAfter)) more"
        }
    }

    /// How an upgrade whose `open` event failed this way is refused: its status, body and `Retry-After` seconds.
    var upgradeRefusal: (status: HTTPResponseStatus, body: String, retryAfter: Int?) {
        switch self {
        case .unreachable(let why): return (.badGateway, "the webhook backend could not be reached: \(why)", nil)
        case .timedOut: return (.gatewayTimeout, "the webhook backend did not answer in time", nil)
        case .backendError(let code): return (.badGateway, "the webhook backend failed: it answered \(code)", nil)
        case .circuitOpen(let retryAfter):
            let seconds = max(1, Int((retryAfter.nanoseconds + 999_999_999) / 1_000_000_000))
            return (.serviceUnavailable, "the webhook backend is failing; try again in \(seconds) s", seconds)
        }
    }

    /// "5 s", "8.7 s", "250 ms".
    static func seconds(_ amount: TimeAmount) -> String {
        let milliseconds = amount.nanoseconds / 1_000_000
        guard milliseconds >= 1_000 else { return "\(milliseconds) ms" }
        let tenths = (milliseconds + 50) / 100
        return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
    }

    /// One error in a few words: the system's words for an errno ("Connection refused"), never a nested dump.
    private static func text(_ error: any Error) -> String {
        switch error {
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        case let error as NIOSSLError:
            return "TLS failure (\(error))"
        case let error as BoringSSLError:
            return "TLS failure (\(error))"
        default:
            return "\(error)"
        }
    }
}
