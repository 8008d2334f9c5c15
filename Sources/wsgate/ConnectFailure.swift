import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import WebSocketEngine

#if canImport(Glibc)
import Glibc
#endif

/// Why `wsgate connect` could not connect, in one line with a hint where one helps: never a library's dump of
/// its error, nor a path of the build.
struct ConnectFailure: CustomStringConvertible {
    var message: String
    var hint: String?

    var description: String { self.hint.map { "\(self.message) (hint: \($0))" } ?? self.message }

    /// The failure of connecting to `url` with `error`.
    init(_ error: any Error, url: String, timeout: Double) {
        let target = (try? WebSocketURL(url)).map { "\($0.host):\($0.port)" } ?? url
        let text = String(describing: error)
        switch error {
        case let error as TLSMaterialError:
            self.message = "\(error.path): \(error.problem)"
        case let error as WebSocketClientError:
            self.message = Self.oneLine(error.description)
            if error.kind == .handshakeTimeout { self.hint = "the server accepted the connection but did not answer the upgrade; --handshake-timeout SECONDS waits longer" }
        case let error as NIOConnectionError:
            (self.message, self.hint) = Self.describe(error, target: target)
        case let error as IOError:
            (self.message, self.hint) = Self.describe(errno: error.errnoCode, target: target)
        case ChannelError.connectTimeout:
            self.message = "connecting to \(target) timed out after \(timeout) s"
            self.hint = "is a firewall dropping the connection? --handshake-timeout SECONDS waits longer"
        case _ where text.contains("CERTIFICATE_VERIFY_FAILED"):
            self.message = "TLS handshake with \(target) failed: the server's certificate is not trusted"
            self.hint = "--ca-file FILE trusts the CA that issued it; --insecure skips verification (test servers only)"
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            self.message = "TLS handshake with \(target) failed: the server's certificate is not for this host name"
            self.hint = "connect with a name the certificate lists; --insecure skips verification (test servers only)"
        case _ where text.contains("CERTIFICATE_REQUIRED") || text.contains("ALERT_HANDSHAKE_FAILURE") || text.contains("ALERT_BAD_CERTIFICATE"):
            self.message = "TLS handshake with \(target) failed: the server requires a client certificate it trusts"
            self.hint = "--cert FILE --key FILE present one"
        case _ where text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG"):
            self.message = "TLS handshake with \(target) failed: the server does not speak TLS on this port"
            self.hint = "use ws:// instead of wss://"
        case let error as NIOSSLError:
            self.message = "TLS handshake with \(target) failed: \(Self.oneLine(Self.withoutBuildPaths(String(describing: error))))"
        default:
            self.message = "connecting to \(target) failed: \(Self.oneLine(Self.withoutBuildPaths(text)))"
        }
    }

    private static func describe(_ error: NIOConnectionError, target: String) -> (String, String?) {
        if let failure = error.connectionErrors.first {
            if let io = failure.error as? IOError { return Self.describe(errno: io.errnoCode, target: target) }
            if case ChannelError.connectTimeout = failure.error {
                return ("connecting to \(target) timed out", "is a firewall dropping the connection?")
            }
            return ("connecting to \(target) failed: \(Self.oneLine(Self.withoutBuildPaths(String(describing: failure.error))))", nil)
        }
        if error.dnsAError != nil || error.dnsAAAAError != nil {
            return ("cannot resolve the host name \(error.host)", "check the URL's host")
        }
        return ("connecting to \(target) failed: no address to connect to", "check the URL's host")
    }

    private static func describe(errno: CInt, target: String) -> (String, String?) {
        switch errno {
        case ECONNREFUSED: return ("connection to \(target) refused", "is the server running and listening on that port?")
        case ENETUNREACH, EHOSTUNREACH: return ("\(target) is unreachable", "check the host and the network")
        case ETIMEDOUT: return ("connecting to \(target) timed out", "is a firewall dropping the connection?")
        case ECONNRESET: return ("the connection to \(target) was reset", "is it a WebSocket server? For wss://, does it speak TLS?")
        default: return ("connecting to \(target) failed: \(String(cString: strerror(errno)))", nil)
        }
    }

    /// `text` on one line.
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }

    /// `text` without the ` at /path/file.cc:123` that BoringSSL's errors carry.
    static func withoutBuildPaths(_ text: String) -> String {
        text.replacing(/\s+at \/[^\s\]\)]*/, with: "")
    }
}
