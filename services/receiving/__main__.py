from services.receiving.app import NAME, Settings, create_app
from shared.runtime.serve import serve

serve(NAME, create_app, Settings)
