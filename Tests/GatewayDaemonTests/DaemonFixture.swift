/// Configuration files for daemon tests: every test daemon listens on loopback with free ports.
enum DaemonFixture {
    /// A file with both listeners on free loopback ports, then `rest` (routes, outbound sockets, log...).
    /// `admin` adds settings to the management listener (for example `token: ${TEST_TOKEN}`).
    static func yaml(_ rest: String, listen: String = "127.0.0.1:0", admin: String = "") -> String {
        """
        listen: \(listen)
        admin: {listen: 127.0.0.1:0\(admin.isEmpty ? "" : ", " + admin)}
        \(rest)
        """
    }
}
