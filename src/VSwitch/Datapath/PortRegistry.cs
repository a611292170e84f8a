// PortRegistry.cs - the switch's ports: which DPDK port sits in which datapath slot, its
// configuration, and its OpenFlow number.
//
// A slot (0..255) indexes the PMDs' tx buffers and counters and is reused; an OpenFlow number
// (1..65280) is what rules, in_port and the MAC table use: stable, never reused within the switch's
// life and its state file (automatic numbers only grow), requestable (ofport_request), persisted
// with the port. Control thread only (the datapath's lock); PMDs see ports only through their plans.
using VSwitch.Config;
using VSwitch.Pipeline;
using VSwitch.Pmd;
using VSwitch.Ports;

namespace VSwitch.Datapath;

public sealed class PortRegistry
{
    private readonly DpdkPort?[] _ports = new DpdkPort?[PmdState.MaxPorts];
    private readonly PortConfig?[] _configs = new PortConfig?[PmdState.MaxPorts];
    private readonly int[] _ofPorts = new int[PmdState.MaxPorts];

    /// <summary>Numbers the configuration asks for, kept free for their ports while start-up opens the others.</summary>
    private readonly HashSet<int> _reserved = [];

    /// <summary>The lowest OpenFlow number never handed out (persisted in the state file).</summary>
    public int NextOfPort { get; set; } = 1;

    /// <summary>The port in <paramref name="slot"/>, or null.</summary>
    public DpdkPort? this[int slot] => _ports[slot];

    /// <summary>The configuration of the port in <paramref name="slot"/>, or null.</summary>
    public PortConfig? ConfigAt(int slot) => _configs[slot];

    /// <summary>The OpenFlow number of the port in <paramref name="slot"/> (0: none).</summary>
    public int OfPortAt(int slot) => _ofPorts[slot];

    /// <summary>Every port, by slot.</summary>
    public IReadOnlyList<DpdkPort> Ports => _ports.Where(p => p != null).Select(p => p!).ToList();

    /// <summary>Every bound port's configuration, by slot (what the state file stores).</summary>
    public List<PortConfig> Configs => _configs.Where(p => p != null).Select(p => p!).ToList();

    /// <summary>Port name -> OpenFlow number (a snapshot, for flow text that names ports).</summary>
    public Dictionary<string, int> Names()
    {
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int dp = 0; dp < PmdState.MaxPorts; dp++)
        {
            if (_ports[dp] is DpdkPort p)
            {
                names[p.Name] = _ofPorts[dp];
            }
        }

        return names;
    }

    /// <summary>The slot of <paramref name="port"/>, or -1.</summary>
    public int SlotOf(DpdkPort port) => Array.IndexOf(_ports, port);

    /// <summary>The slot of the port named <paramref name="name"/>; throws if there is none.</summary>
    public int SlotOf(string name)
    {
        int slot = Array.FindIndex(_ports, p => p?.Name == name);
        return slot >= 0 ? slot : throw new VSwitchException($"no port named '{name}'");
    }

    /// <summary>The port using OpenFlow number <paramref name="ofPort"/>, or null.</summary>
    public DpdkPort? WithOfPort(int ofPort) => Array.IndexOf(_ofPorts, ofPort) is int s and >= 0 ? _ports[s] : null;

    /// <summary>Keeps <paramref name="ofPort"/> out of automatic numbering until <see cref="ClearReservations"/>.</summary>
    public void Reserve(int ofPort) => _reserved.Add(ofPort);

    public void ClearReservations() => _reserved.Clear();

    /// <summary>
    /// Checks that <paramref name="pc"/> can join (name, device and requested number free) and
    /// returns the slot and OpenFlow number it will get; changes nothing.
    /// </summary>
    public (int Slot, int OfPort) Admit(PortConfig pc)
    {
        if (_ports.Any(p => p?.Name == pc.Name))
        {
            throw new VSwitchException($"port '{pc.Name}' already exists");
        }

        if (_ports.FirstOrDefault(p => p != null && PortConfig.SameDevice(p.DevArgs, pc.DevArgs)) is DpdkPort owner)
        {
            throw new VSwitchException($"port '{pc.Name}': device '{PortConfig.DeviceName(pc.DevArgs)}' is already in use by port '{owner.Name}'");
        }

        int slot = Array.IndexOf(_ports, null);
        if (slot < 0)
        {
            throw new VSwitchException($"port '{pc.Name}': all {PmdState.MaxPorts} port slots are in use");
        }

        if (pc.OfPort is int want)
        {
            if (want < 1 || want > PortConfig.MaxOfPort)
            {
                throw new VSwitchException($"port '{pc.Name}': OpenFlow port {want} is out of range (1 to {PortConfig.MaxOfPort})");
            }

            if (WithOfPort(want) is DpdkPort holder)
            {
                throw new VSwitchException($"port '{pc.Name}': OpenFlow port {want} is taken by port '{holder.Name}'");
            }
        }

        return (slot, pc.OfPort ?? NextFreeOfPort());
    }

    /// <summary>The number a new port gets: the lowest never handed out (so rules that named a removed port never reach a new one).</summary>
    private int NextFreeOfPort()
    {
        int n = NextOfPort;
        while (n <= PortConfig.MaxOfPort && (_reserved.Contains(n) || WithOfPort(n) != null))
        {
            n++;
        }

        return n <= PortConfig.MaxOfPort ? n : throw new VSwitchException($"every OpenFlow port number up to {PortConfig.MaxOfPort} has been used; request a free one (ofport)");
    }

    /// <summary>Puts <paramref name="port"/> in <paramref name="slot"/> (or empties it with null): what the next PMD plans are built from.</summary>
    public void Occupy(int slot, DpdkPort? port) => _ports[slot] = port;

    /// <summary>Gives the port in <paramref name="slot"/> its configuration and OpenFlow number (stored with the port: the same number after a restart).</summary>
    public void Bind(int slot, PortConfig pc, int ofPort)
    {
        pc.OfPort = ofPort;
        _configs[slot] = pc;
        _ofPorts[slot] = ofPort;
        NextOfPort = Math.Max(NextOfPort, ofPort + 1);
    }

    /// <summary>Forgets the configuration and number of <paramref name="slot"/> (the number is not handed out again).</summary>
    public void Unbind(int slot)
    {
        _configs[slot] = null;
        _ofPorts[slot] = 0;
    }

    /// <summary>The ports as the pipeline sees them: OpenFlow number, and the slot the PMDs send to.</summary>
    /// <param name="linkUp">Each slot's link state as last polled (null: every link up).</param>
    public List<PipelinePort> PipelinePorts(int exceptSlot = -1, bool[]? linkUp = null)
    {
        var list = new List<PipelinePort>();
        for (int dp = 0; dp < PmdState.MaxPorts; dp++)
        {
            if (_ports[dp] is DpdkPort p && dp != exceptSlot)
            {
                var pc = _configs[dp];
                list.Add(new PipelinePort(_ofPorts[dp], p.Name, pc?.VlanMode ?? VlanMode.None, pc?.Tag ?? 0, pc?.Trunks) { Slot = dp, LinkUp = linkUp?[dp] ?? true });
            }
        }

        return list;
    }
}
