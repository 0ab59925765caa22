import Seda

extension FileStage {
    /// Creates a file stage whose engine is `seda.disk` from `configuration`
    /// (`SEDA_DISK` in the environment, the file, or code), unless `engine`
    /// is given: an explicit engine wins (see "Poller and disk engine: who
    /// wins" in ``SedaConfiguration``). Throws as
    /// `FileStage/init(runtime:name:engine:options:)`. Any thread but a
    /// handler on the runtime's shared threads.
    public convenience init(
        runtime: Runtime, name: String, configuration: SedaConfiguration, engine: DiskEngine? = nil,
        options: FileStageOptions = FileStageOptions()
    ) throws(SedaError) {
        try self.init(
            runtime: runtime, name: name, engine: engine ?? configuration.diskEngine ?? .automatic, options: options)
    }
}
