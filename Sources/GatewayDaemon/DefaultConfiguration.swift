/// The configuration `wsgate` runs without `--config`.
public enum DefaultConfiguration {
    /// The default routes: an echo endpoint, and chat rooms whose messages go to everyone in the room.
    public static let routes = """
        routes:
          - path: /echo
            handler: echo
          - path: /chat/{room}
            handler: broadcast
            groups: ["room:{room}"]
        """

    /// The default routes on 127.0.0.1:8080, the management API on 127.0.0.1:9090.
    public static let yaml = """
        # wsgate's embedded default configuration.
        listen: 127.0.0.1:8080
        admin:
          listen: 127.0.0.1:9090
        \(routes)
        """
}
