from libs.service_app import main
from services.inventory.app import definition

main(definition)
