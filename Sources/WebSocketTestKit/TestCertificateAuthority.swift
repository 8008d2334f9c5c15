import Crypto
import FoundationEssentials
import NIOSSL
import SwiftASN1
import WebSocketEngine
import X509

/// A throwaway certificate authority for tests: it issues server and client certificates at run time, so
/// tests of `wss` and mutual TLS need no files and nothing that expires in the repository.
public struct TestCertificateAuthority: Sendable {
    /// A certificate with its private key.
    public struct Identity: Sendable {
        /// The certificate.
        public let certificate: NIOSSLCertificate
        /// Its private key.
        public let privateKey: NIOSSLPrivateKey
        /// The certificate in PEM form.
        public let certificatePEM: String
        /// The private key in PEM form.
        public let privateKeyPEM: String
        /// The subject as RFC 4514 text (what a server reports for a client certificate).
        public let subject: String
    }

    private let key: P256.Signing.PrivateKey
    private let name: DistinguishedName
    /// The CA certificate, to trust.
    public let certificate: NIOSSLCertificate
    /// The CA certificate in PEM form.
    public let certificatePEM: String

    /// Creates a new CA with a fresh key.
    public init(commonName: String = "WebSocketGateway Test CA") throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(commonName) }
        let certificate = try Self.sign(
            publicKey: key.publicKey, subject: name, issuer: name, issuerKey: key,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            })
        self.key = key
        self.name = name
        self.certificatePEM = try certificate.serializeAsPEM().pemString
        self.certificate = try NIOSSLCertificate(bytes: Array(self.certificatePEM.utf8), format: .pem)
    }

    /// Issues a certificate for `commonName`, valid for the DNS names given, for server and client use; by default
    /// valid from an hour ago for a day (`validity` sets another window, e.g. one that has ended).
    public func issue(commonName: String, dnsNames: [String] = ["localhost"], validity: ClosedRange<Date>? = nil) throws -> Identity {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("WebSocketGateway Tests")
            CommonName(commonName)
        }
        let certificate = try Self.sign(
            publicKey: key.publicKey, subject: subject, issuer: self.name, issuerKey: self.key, validity: validity,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(dnsNames.map { GeneralName.dnsName($0) })
            })
        let certificatePEM = try certificate.serializeAsPEM().pemString
        let keyPEM = key.pemRepresentation
        return Identity(
            certificate: try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem),
            privateKey: try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem),
            certificatePEM: certificatePEM,
            privateKeyPEM: keyPEM,
            subject: subject.description
        )
    }

    /// A certificate valid from an hour ago for a day (or for `validity`), signed with ECDSA P-256 and SHA-256.
    private static func sign(
        publicKey: P256.Signing.PublicKey,
        subject: DistinguishedName,
        issuer: DistinguishedName,
        issuerKey: P256.Signing.PrivateKey,
        validity: ClosedRange<Date>? = nil,
        extensions: Certificate.Extensions
    ) throws -> Certificate {
        let now = Date()
        let validity = validity ?? (now - 3600)...(now + 86400)
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(publicKey), notValidBefore: validity.lowerBound,
            notValidAfter: validity.upperBound, issuer: issuer, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: .init(issuerKey))
    }

    /// A server TLS configuration presenting `identity`; with `requireClientCertificate`, clients must present a
    /// certificate issued by this CA.
    public func serverTLS(_ identity: Identity, requireClientCertificate: Bool = false) -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(identity.certificate)], privateKey: .privateKey(identity.privateKey))
        if requireClientCertificate {
            tls.certificateVerification = .noHostnameVerification
            tls.trustRoots = .certificates([self.certificate])
        }
        return tls
    }

    /// A client TLS configuration trusting only this CA, optionally presenting a client certificate.
    public func clientTLS(presenting identity: Identity? = nil) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([self.certificate])
        if let identity {
            tls.certificateChain = [.certificate(identity.certificate)]
            tls.privateKey = .privateKey(identity.privateKey)
        }
        return tls
    }
}
