using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(VSwitch.Benchmarks.ForwardingBenchmarks).Assembly).Run(args);
