"""The scheduler extender (filter, prioritize, bind), its GPU view and the controllers it runs."""
