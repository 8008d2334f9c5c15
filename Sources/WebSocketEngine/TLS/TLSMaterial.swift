import FoundationEssentials
import NIOSSL
import SwiftASN1
import X509

/// What is wrong with a TLS file: the file and the problem, in words an operator can act on.
public struct TLSMaterialError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem it is.
    public enum Kind: String, Sendable, Hashable {
        /// The file cannot be read.
        case unreadable
        /// The file holds no PEM certificate, or one that cannot be parsed.
        case invalidCertificate
        /// The file holds no PEM private key, or one that cannot be parsed (an encrypted key included).
        case invalidKey
        /// A certificate's validity ended.
        case expired
        /// A certificate's validity has not begun.
        case notYetValid
        /// The private key is not the key of the certificate.
        case keyMismatch
    }

    /// What kind of problem it is.
    public var kind: Kind
    /// The file concerned.
    public var path: String
    /// The problem, without the file's name.
    public var problem: String

    public var description: String { "\(self.path): \(self.problem)" }
}

/// Checks certificate, key and CA files before they are used, so that a daemon or a client reports a missing
/// file, an expired certificate or a key of another certificate by name, rather than failing its first handshake.
public enum TLSMaterial {
    /// Reads a PEM certificate chain (or a CA bundle) and checks that every certificate in it is valid at `now`.
    /// Returns the certificates, leaf first.
    public static func certificates(file path: String, now: Date = Date()) throws(TLSMaterialError) -> [Certificate] {
        let text = try self.read(path)
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: text).filter { $0.discriminator == "CERTIFICATE" }
        } catch {
            throw TLSMaterialError(kind: .invalidCertificate, path: path, problem: "not a PEM certificate file")
        }
        guard !documents.isEmpty else {
            throw TLSMaterialError(kind: .invalidCertificate, path: path, problem: "no PEM certificate in the file")
        }
        var certificates: [Certificate] = []
        for (index, document) in documents.enumerated() {
            let certificate: Certificate
            do {
                certificate = try Certificate(pemDocument: document)
            } catch {
                throw TLSMaterialError(kind: .invalidCertificate, path: path, problem: "certificate \(index + 1) cannot be parsed (\(error))")
            }
            if certificate.notValidAfter < now {
                throw TLSMaterialError(
                    kind: .expired, path: path,
                    problem: "the certificate for \(certificate.subject) expired on \(Self.format(certificate.notValidAfter))")
            }
            if certificate.notValidBefore > now {
                throw TLSMaterialError(
                    kind: .notYetValid, path: path,
                    problem: "the certificate for \(certificate.subject) is not valid before \(Self.format(certificate.notValidBefore))")
            }
            certificates.append(certificate)
        }
        return certificates
    }

    /// Reads a PEM private key as the TLS library will, and checks that it belongs to `leaf` (read from
    /// `certificateFile`) when given.
    public static func checkKey(file path: String, matching leaf: Certificate?, certificateFile: String) throws(TLSMaterialError) {
        let text = try self.read(path)
        do {
            _ = try NIOSSLPrivateKey(bytes: Array(text.utf8), format: .pem)
        } catch {
            throw TLSMaterialError(kind: .invalidKey, path: path, problem: "not a readable PEM private key (an encrypted key is not supported)")
        }
        // A key type swift-certificates does not know is left to the TLS library, which read it above.
        guard let leaf, let key = try? Certificate.PrivateKey(pemEncoded: text) else { return }
        guard key.publicKey == leaf.publicKey else {
            throw TLSMaterialError(
                kind: .keyMismatch, path: path,
                problem: "this private key does not match the certificate in \(certificateFile) (\(leaf.subject))")
        }
    }

    /// Checks a certificate chain and its key together.
    public static func checkIdentity(certificateFile: String, keyFile: String, now: Date = Date()) throws(TLSMaterialError) {
        let chain = try self.certificates(file: certificateFile, now: now)
        try self.checkKey(file: keyFile, matching: chain.first, certificateFile: certificateFile)
    }

    private static func read(_ path: String) throws(TLSMaterialError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file"
            throw TLSMaterialError(kind: .unreadable, path: path, problem: reason)
        }
    }

    private static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
