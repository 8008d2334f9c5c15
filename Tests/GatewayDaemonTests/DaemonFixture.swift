/// Configuration files for daemon tests: every test daemon listens on loopback, on free ports.
enum DaemonFixture {
    /// `yaml` with both listeners on free loopback ports unless it sets them itself (`listen:`, `admin:` at the
    /// top level).
    static func complete(_ yaml: String) -> String {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        var header: [String] = []
        if !lines.contains(where: { $0.hasPrefix("listen:") }) { header.append("listen: 127.0.0.1:0") }
        if !lines.contains(where: { $0.hasPrefix("admin:") }) { header.append("admin: {listen: 127.0.0.1:0}") }
        return (header + [yaml]).joined(separator: "\n")
    }
}
