// ControlSession.cs - what the switch keeps for one control connection between its requests: at
// most one open flow transaction (flows-begin .. flows-commit). It is dropped with the connection,
// so a client that goes away mid-transaction leaves the tables untouched and nothing behind.
using VSwitch.Pipeline;

namespace VSwitch.Control;

public sealed class ControlSession
{
    /// <summary>The open flow transaction, or null.</summary>
    internal FlowTransaction? Transaction { get; set; }

    /// <summary>Undone when the connection ends (a drop capture this connection started).</summary>
    internal Action? OnClose { get; set; }

    /// <summary>Called once by the server when the connection ends.</summary>
    public void Close()
    {
        var a = OnClose;
        OnClose = null;
        a?.Invoke();
    }
}

/// <summary>Rules received in chunks, applied at once by flows-commit (add or replace).</summary>
internal sealed class FlowTransaction(long id, bool replace, string origin)
{
    public long Id { get; } = id;

    public bool Replace { get; } = replace;

    /// <summary>What the client calls the rules' source (its file name); errors name its lines.</summary>
    public string Origin { get; } = origin;

    public List<FlowRule> Rules { get; } = [];

    public int Chunks { get; set; }
}
