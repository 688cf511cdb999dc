"""The stress campaign: stages under real cgroup limits, load, faults, and its report."""
