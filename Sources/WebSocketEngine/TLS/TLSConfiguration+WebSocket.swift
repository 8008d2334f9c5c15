import NIOSSL

extension TLSConfiguration {
    /// A `wss` server configuration from PEM files: the certificate chain (leaf first) and its private key. With
    /// `clientCAFile`, clients may present a certificate issued by that CA (mutual TLS); with
    /// `requireClientCertificate`, they must.
    public static func webSocketServer(
        certificateChainFile: String,
        privateKeyFile: String,
        clientCAFile: String? = nil,
        requireClientCertificate: Bool = false
    ) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(certificateChainFile).map { NIOSSLCertificateSource.certificate($0) }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: privateKeyFile, format: .pem)))
        if let clientCAFile {
            tls.trustRoots = .file(clientCAFile)
            tls.certificateVerification = requireClientCertificate ? .noHostnameVerification : .optionalVerification
        } else if requireClientCertificate {
            tls.certificateVerification = .noHostnameVerification
        }
        return tls
    }

    /// A `wss` client configuration: the system trust store, or only the CA in `caFile`; optionally a client
    /// certificate (PEM chain and key) for servers that require mutual TLS. Server names are always verified.
    public static func webSocketClient(
        caFile: String? = nil,
        certificateChainFile: String? = nil,
        privateKeyFile: String? = nil
    ) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.trustRoots = .file(caFile) }
        if let certificateChainFile, let privateKeyFile {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateChainFile).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        }
        return tls
    }
}
