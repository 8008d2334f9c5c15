/// Runs `run` (a server's or a gateway's) in a child task while `body` runs, then calls `shutdown` and waits for
/// `run` to return, also when `body` throws.
public func whileRunning<T: Sendable>(
    _ run: @escaping @Sendable () async throws -> Void,
    shutdown: @Sendable () async -> Void,
    _ body: () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await run() }
        do {
            let result = try await body()
            await shutdown()
            try await group.waitForAll()
            return result
        } catch {
            await shutdown()
            try await group.waitForAll()
            throw error
        }
    }
}
