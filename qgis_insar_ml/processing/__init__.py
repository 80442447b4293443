"""The Processing provider ``insarml`` and its algorithms (thin layers over ``core``)."""
