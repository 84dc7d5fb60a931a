from libs.service_app import main
from services.order.app import definition

main(definition)
