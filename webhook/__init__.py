"""The mutating admission webhook (Flask under gunicorn): AdmissionReview in, JSONPatch out."""
