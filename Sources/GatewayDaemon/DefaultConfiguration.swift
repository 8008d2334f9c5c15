/// The configuration `wsgate` runs without `--config`.
public enum DefaultConfiguration {
    /// An echo endpoint and chat rooms on 127.0.0.1:8080, the management API on 127.0.0.1:9090.
    public static let yaml = """
        # wsgate's embedded default configuration.
        listen: 127.0.0.1:8080
        admin:
          listen: 127.0.0.1:9090
        routes:
          - path: /echo
            handler: echo
          - path: /chat/{room}
            handler: broadcast
            groups: ["room:{room}"]
        """
}
