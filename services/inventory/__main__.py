from shared.runtime.serve import serve

from services.inventory.app import NAME, Settings, create_app

serve(NAME, create_app, Settings())
